"""Ways audio reaches the interview session without a LiveKit room (the browser WebSocket)."""
