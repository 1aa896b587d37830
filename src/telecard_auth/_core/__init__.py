"""The pure core: the domain's nouns, the policy, the rules, keys, receipts, errors and time.

Nothing in this package reads a clock, touches storage or does I/O; ``rules`` holds every rule.
"""
