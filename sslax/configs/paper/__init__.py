"""Paper-scale recipes (`paper/<name>` in sslax.configs.list_configs()); imagenet.py holds the
ImageNet settings the image ones share."""
