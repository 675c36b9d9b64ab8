"""patina.actors"""
