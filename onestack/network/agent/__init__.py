"""The network agent: applies what the Networking database says to this host's data plane."""
