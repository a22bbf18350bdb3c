"""The host index: one pass over a host's events that every analysis tool reads."""
