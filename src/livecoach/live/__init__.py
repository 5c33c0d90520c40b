"""The live path: signalling, the server's WebRTC peers, the audio tap, the relay, and the
coach's indicator stream. The measuring engine is the same one ``livecoach analyze`` uses."""
