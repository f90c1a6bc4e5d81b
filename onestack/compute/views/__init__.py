"""How compute resources look on the wire, per microversion."""
