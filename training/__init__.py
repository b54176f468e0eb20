"""The torch FSDP trainer that streams Lakesift's MDS shards (issue 7) and the evaluation harness
(issue 8). Nothing here imports Spark."""
