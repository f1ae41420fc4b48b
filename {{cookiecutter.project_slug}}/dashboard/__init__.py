"""The live training dashboard: server.py (the web server), serve.py (`make dashboard`),
templates/ and static/ (the page; vendored JavaScript with its licences, no CDN)."""
