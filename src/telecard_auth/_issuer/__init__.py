"""The shells around the rules: ``CodeIssuer`` and ``AsyncCodeIssuer``.

``shell`` holds what both share (their parts, each verb as a plan, the retry loop as steps),
``filing`` where a subject is filed and how it moves to a new pseudonym key, and ``issuers`` the two
issuers, which only perform the steps: with plain calls, or awaited.
"""

from telecard_auth._issuer.issuers import AsyncCodeIssuer, CodeIssuer
from telecard_auth._issuer.shell import MoveProgress

__all__ = ["AsyncCodeIssuer", "CodeIssuer", "MoveProgress"]
