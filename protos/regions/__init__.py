"""regiond API (protocol buffers); generated code lives in v1/."""
