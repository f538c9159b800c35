"""prom"""
