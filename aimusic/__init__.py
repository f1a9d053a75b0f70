"""aimusic"""
