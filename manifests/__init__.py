"""patina.manifests"""
