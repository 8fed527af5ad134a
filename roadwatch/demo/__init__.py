"""The one-command demo: central, a broker and an edge node on a sample scene."""
