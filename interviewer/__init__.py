"""interviewer: self-hosted AI-proctored voice interviews."""

import os

# Nothing in this product may reach a model hub: weights come only from installed packages.
# Set here, on the package's first import, so that no submodule (nor a library it loads, which
# reads these once at its own import) can run before it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
