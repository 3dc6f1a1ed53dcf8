"""Email and web tickets: the SMTP listener, threading, attachments, sanitised HTML, SMTP replies."""
