"""Config: the YAML schema (`schema`), its loader (`load`) and cross-key checks (`checks`)."""

from honer.config.load import config_from_dict, load_config
from honer.config.schema import Config, DatasetConfig

__all__ = ["Config", "DatasetConfig", "config_from_dict", "load_config"]
