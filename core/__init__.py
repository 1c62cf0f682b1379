"""Domain logic: containers, states, runtime driver, monitor, store. No sockets, no wire."""
