"""`python -m cnnext`: the configuration report (cnnext.show_config())."""
from .config import show_config

show_config()
