"""honer: fine-tune Hugging Face causal language models from one YAML file.

Importing this package must stay cheap: no torch, transformers or datasets here.
"""

__version__ = "0.1.0"
