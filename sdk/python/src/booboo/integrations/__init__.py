"""Framework integrations, one leaf module per framework.

Each module imports its framework at the top, so it is imported only once
``init()`` knows the framework is in use; ``import booboo`` imports none of them.
"""
