"""Lakesift: web crawls to language-model training data (Spark + Delta Lake), and a torch trainer.

Cross-cutting pieces that neither Spark jobs nor the trainer own: strict config loading, input
listing and opening of local / cloud URIs, logging. Nothing here imports pyspark.
"""

__version__ = "0.1.0"
