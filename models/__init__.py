"""patina.models"""
