"""Real servers on loopback for the runtime tests (protocol doubles only where no real one runs)."""
