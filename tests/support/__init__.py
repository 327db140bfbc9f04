"""Test helpers that stand in for the network around the daemon (real sockets, scripted faults)."""
