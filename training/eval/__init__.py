"""In-context evaluation of checkpoints, CORE / EXTENDED style (DCLM), on llm-foundry task files.

    python -m training.eval --checkpoint runs/x/final --suite conf/eval/core.yaml [--out results.json]
    make eval CKPT=runs/x/final

Task types (the ``type`` of each suite entry):
* ``multiple_choice`` (``query``, ``choices``, ``gold``): the prompt is the few-shot examples then
  ``query + continuation_delimiter``; the prediction is the choice with the lowest mean per-token loss;
* ``schema`` (``context_options``, ``continuation``, ``gold``): the context varies, the continuation is
  fixed; the prediction is the context under which the continuation has the lowest mean loss;
* ``language_modeling`` (``context``, ``continuation``): correct when the greedy prediction of every
  continuation token is that token;
* ``generation_task_with_answers`` (``context``, ``answer``, ``aliases``): greedy generation until the
  example delimiter, correct on an exact match with the answer or an alias after normalisation
  (lower case, no punctuation, no articles, single spaces).
Few-shot examples come from the same file, chosen by a seeded generator per (task, example), never the
example itself; examples are joined by ``example_delimiter`` (default newline). Ties between
choices are broken by a seeded draw, so a model without preference scores chance.

Score: accuracy per task, centered accuracy ``(acc - r) / (1 - r)`` with the task's random baseline
``r`` (DCLM's v2 table), CORE / EXTENDED = mean centered accuracy. A task whose file is absent is
listed as missing, never counted as zero; the aggregate over the present tasks is reported beside a
null CORE that says which tasks are missing. The JSON has the checkpoint, the suite and a hash of
each task file.

Context window: each request keeps its whole continuation and the end of its context (cut from the
left) within the model's window; an example with a continuation that does not fit (or an empty one) is
listed under the task's ``skipped`` with the reason and left out of its accuracy, never a crash; a
task with no example scored makes CORE null, like a missing one.

Checkpoints (a local path, a cloud URI, ``hf://`` or a hub id, through ``lakesift.resolve``): a folder
written by training.export (``final/``), a training checkpoint ``step-N`` (torch distributed checkpoint
+ meta.json), or a Hugging Face causal-LM folder (``transformers``). Defaults from the shared data
folder (``$LAKESIFT_SHARED``): the task files in ``data/eval``, GPT-NeoX's tokenizer.

Modules: ``tasks`` (specs, prompts, scoring a task, the aggregate), ``scorer`` (the model side),
``load`` (checkpoints, tokenizers), ``cli`` (the command).
"""

from training.eval.cli import main
from training.eval.load import load_checkpoint, load_tokenizer
from training.eval.scorer import Request, Scorer, perplexity
from training.eval.tasks import (
    Suite,
    TaskSpec,
    aggregate,
    evaluate_task,
    example_text,
    fewshot_indices,
    load_suite,
    normalize_answer,
    prompts,
)

__all__ = ["Request", "Scorer", "Suite", "TaskSpec", "aggregate", "evaluate_task", "example_text",
           "fewshot_indices", "load_checkpoint", "load_suite", "load_tokenizer", "main", "normalize_answer",
           "perplexity", "prompts"]
