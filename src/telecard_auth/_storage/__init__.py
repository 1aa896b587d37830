"""Storage: the protocol every backend provides, the backends, the URL table, the codec.

Each backend's client library is imported only by its own module, when a URL names it.
"""
