"""Client dialects besides ``/realtime``: each is a Translator subclass and a protocol."""
