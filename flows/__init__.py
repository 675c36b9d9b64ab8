"""patina.flows"""
