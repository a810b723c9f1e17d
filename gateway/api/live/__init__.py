"""The live stream of the control room: alarm transitions, events, readings."""
