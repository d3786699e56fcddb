"""BERT-base masked-language-model pretraining on a text folder (e.g. Wikipedia + books).

  python -m sslax.main --config configs/paper/bert_base.py --workdir gs://BUCKET/bert_base \
      --config.data.source='text:/mnt/corpus/*.txt' --config.eval.source=tsv:/mnt/sst2

Paper: Devlin, Chang, Lee, Toutanova, "BERT: Pre-training of Deep Bidirectional Transformers
for Language Understanding", NAACL 2019 (arXiv:1810.04805). Recipe (sec. 3.1, appendix A.2):
12 layers, width 768, 12 heads, FFN 3072 (110M parameters), 30k WordPiece vocabulary,
BooksCorpus + English Wikipedia, batch 256 sequences, 1M steps (90% at length 128, 10% at
512), Adam lr 1e-4 with 10k warmup steps then linear decay, weight decay 0.01, 15% masking
(80% [MASK], 10% random, 10% kept). Headline metric (Table 1): GLUE average 79.6 for
BERT-base; SST-2 93.5% accuracy.

Data: any `text:` folder or glob of UTF-8 files (the README says how to make one from a
Wikipedia dump); TFDS's `wikipedia` and `c4` builders need TensorFlow / Apache Beam to prepare,
which sslax does not depend on. A SentencePiece vocabulary of 30,522 ids is trained once into
WORKDIR/tokenizer. Downstream: `eval.source` (default: the corpus's files as classes; SST-2 as
a `tsv:` gives the paper's sentiment task, linear probe + fine-tuning).

Hardware: sized for TPU v4-8 (64 sequences per chip) or 8x H100. Compile check on this CPU
(`python -m sslax.preflight --config configs/paper/bert_base.py --topology v4-8
--config.data.source=text:CORPUS`, docs/scale.md): 3.1 of 32 GiB HBM per chip in bfloat16;
17.6 TFLOP per step as compiled (checked on a Tiny Shakespeare vocabulary of fewer than 30,522
pieces: 94M parameters, not 110M; the extra embedding rows cost memory, barely FLOPs), so 0.016 s
at the v4's bf16 peak and ~0.040 s at 40% MFU: 1M steps in ~11 h of compute. The paper: 4 days
on 16 TPU v2/v3 chips. Not run on a TPU yet: experiments/accelerator_check.py measures it.
Deviations from the paper: README "Paper-scale configs" (one length, 128, for the whole
schedule; cosine instead of linear decay; SentencePiece unigram instead of WordPiece; no NSP).
`configs/paper/bert_base.py:smoke`: 4 steps of a 1-block model on the `json` package (CI).
"""
from sslax.configs import mlm_text
from sslax import config_base


def get_config(arg: str = ''):
  if arg not in ('', 'smoke'):
    raise ValueError(f"configs/paper/bert_base.py: unknown argument {arg!r}; use '' or 'smoke'.")
  c = config_base.base()
  c.method = 'mlm'
  c.seed = 0
  c.total_steps = 1_000_000
  c.batch_size = 256
  c.log_every = 100
  c.data.source = 'text:corpus/*.txt'   # set it: a folder or glob of the pretraining text
  c.data.in_memory = False
  c.data.tokenizer = 'sentencepiece'
  c.data.vocab_size = 30522              # BERT's vocabulary size (specials included)
  c.data.seq_len = 128
  c.eval.source = c.data.source
  c.model = dict(name='transformer', width=768, depth=12, num_heads=12, mlp_dim=3072,
                 max_len=512, tie_embeddings=True, dtype='bfloat16')
  c.mlm = dict(mask_prob=0.15, replace_prob=0.8, random_prob=0.1, max_predictions=20,
               span_p=0.0, span_max=10)
  c.optim.name = 'adamw'
  c.optim.learning_rate = 1e-4
  c.optim.warmup_steps = 10_000
  c.optim.weight_decay = 0.01
  c.optim.b1, c.optim.b2 = 0.9, 0.999
  c.optim.grad_clip_norm = 1.0
  c.checkpoint.every_steps = 10_000
  c.checkpoint.max_to_keep = 2
  c.evals.fine_tune = dict(type='fine_tune', source='', every_steps=0, task='classification',
                           epochs=3.0, batch_size=32, learning_rate=2e-5, weight_decay=0.01)
  if arg == 'smoke':
    c.data.source = c.eval.source = mlm_text.stdlib_source('json')
    c.data.in_memory = True
    c.data.tokenizer = 'byte'   # SentencePiece training is tested in tests/test_sentencepiece.py
    c.data.seq_len = 32
    c.total_steps = 4
    c.batch_size = 16
    c.eval.batch_size = 64
    c.log_every = 2
    c.checkpoint.every_steps = 2
    c.model.update(width=32, depth=1, num_heads=2, mlp_dim=64, max_len=32)
    c.mlm.max_predictions = 6
    c.optim.warmup_steps = 1
    c.evals.linear_probe.update(steps=20, l2_grid=(1e-4, 1e-2))
    c.evals.fine_tune.update(epochs=0.3)   # 2 steps of the json package's chunks
  return c
