"""Test support: synthetic image folders, the digits dataset, timm without torchvision."""
