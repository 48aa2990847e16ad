"""Live senders and servers (VMC, Live Link Face, WebSocket). Built on motion\x27s streaming API."""
