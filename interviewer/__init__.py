"""interviewer: self-hosted AI-proctored voice interviews."""
