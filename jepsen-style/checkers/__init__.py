"""Checkers for jepsen-style histories: zones and WGL linearizability for
registers, the acknowledged-push set, blob fetch integrity, local sessions."""
