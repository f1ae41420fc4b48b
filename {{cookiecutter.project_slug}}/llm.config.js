{%- set p = cookiecutter | preset_values -%}
{%- set m = cookiecutter | model_shape -%}
{%- set plugins = cookiecutter.plugins.replace(' ', '').split(',') | reject('equalto', '') | list -%}
{%- set training_plugins = plugins | reject('equalto', 'synthex') | list -%}
{%- set arch = cookiecutter.model -%}
// llm.config.js — the one configuration of this project.
//
// Contract: this file is ONE object literal after `module.exports =`, holding plain values only
// (numbers, strings, true/false, null, lists, objects). No expressions, variables, functions,
// require() or `undefined`: the Python code reads it as JSON5 and never executes JavaScript, so
// Node is not needed. Comments and trailing commas are fine.
//
// Any key can be overridden for one run from the command line, e.g.
//   make train ARGS="--training.max_steps 300 --training.learning_rate 0.001"
module.exports = {
  model: {
{%- if arch == 'gpt' %}
    architecture: 'gpt',      // decoder-only, Llama-style (RMSNorm, RoPE, SwiGLU, tied embeddings)
{%- elif arch == 'bert' %}
    architecture: 'bert',     // encoder-only: learns by filling in [MASK]s
    variant: '{{ p.variant }}',   // 'modernbert' (rotary positions, pre-norm, GeGLU, no biases: learns fastest; exports as ModernBertForMaskedLM) or 'bert' (the original: learned positions, post-LN; BertForMaskedLM)
{%- else %}
    architecture: 't5',       // encoder-decoder, T5 v1.1 layers (RMS LayerNorm, relative position buckets, gated GELU)
{%- endif %}
    preset: '{{ cookiecutter.preset }}',         // the size preset these numbers came from (informational)
{%- if arch == 't5' %}
    layers: {{ m.layers }},                // blocks in the encoder, and as many in the decoder
    heads: {{ m.heads }},                 // attention heads; dim / heads = head size
{%- elif arch == 'bert' %}
    layers: {{ m.layers }},                // transformer layers
    heads: {{ m.heads }},                 // attention heads; dim / heads = head size
{%- else %}
    layers: {{ m.layers }},                // transformer blocks
    heads: {{ m.heads }},                 // attention heads; dim / heads = head size, must be even
    kv_heads: {{ m.kv_heads }},              // key/value heads (< heads = grouped-query attention); divides heads
{%- endif %}
    dim: {{ m.dim }},                 // model width (embedding size)
{%- if arch == 'gpt' %}
    mlp_dim: {{ m.mlp_dim }},             // hidden width of the SwiGLU feed-forward block
    max_length: {{ m.max_length }},          // context length in tokens
{%- elif arch == 'bert' %}
    mlp_dim: {{ m.mlp_dim }},             // hidden width of the feed-forward block (modernbert's GeGLU: about 8/3 x dim; bert's GELU: 4 x dim)
    max_length: {{ m.max_length }},          // tokens per sequence, [CLS] included
{%- else %}
    mlp_dim: {{ m.mlp_dim }},             // hidden width of the gated-GELU feed-forward block
    max_length: {{ m.max_length }},          // tokens of the encoder's input (the decoder writes up to generation.max_new_tokens)
{%- endif %}
    dropout: 0.0,             // 0 is best for short runs and fastest on CPU; try 0.1 for long runs on small data
{%- if arch == 'gpt' %}
    rope_theta: 10000.0,      // RoPE base frequency
    norm_eps: 1e-5,           // RMSNorm epsilon
    tie_embeddings: true,     // share the input embedding and output projection (saves vocab * dim params)
{%- elif arch == 'bert' %}
    norm_eps: {{ '1e-5' if p.variant == 'modernbert' else '1e-12' }},          // LayerNorm epsilon (ModernBERT's 1e-5, BERT's 1e-12); the MLM decoder always shares the word embeddings
{%- else %}
    norm_eps: 1e-6,           // epsilon of T5's LayerNorm (an RMS norm); input and output embeddings are always shared
    relative_attention_buckets: 32,       // learned attention biases, one per bucket of query-key distance
    relative_attention_max_distance: 128, // distances from here on share the last bucket
{%- endif %}
  },

  tokenizer: {
{%- if arch == 'gpt' %}
    type: '{{ cookiecutter | tokenizer_type }}',            // 'bpe' (byte-level, lossless), 'wordpiece' or 'unigram'
{%- else %}
    type: '{{ cookiecutter | tokenizer_type }}',            // 'wordpiece' (BERT's), 'unigram' (T5's, SentencePiece-style) or 'bpe' (byte-level)
{%- endif %}
    vocab_size: {{ m.vocab_size }},        // target size; the trained tokenizer's real size is what the model uses
    min_frequency: 2,         // a merge/piece must occur at least this often
{%- if arch == 'gpt' %}
    // the first ends every document; <|im_start|> and <|im_end|> mark chat turns (make finetune)
    special_tokens: ['<|endoftext|>', '<|pad|>', '<|unk|>', '<|im_start|>', '<|im_end|>'],
{%- elif arch == 'bert' %}
    // [SEP] ends every document, [CLS] starts every sequence, [MASK] is what the model fills in
    special_tokens: ['[SEP]', '[CLS]', '[MASK]', '[PAD]', '[UNK]'],
{%- else %}
    // </s> ends every document (and every input and output); <pad> starts the decoder;
    // <|im_start|> and <|im_end|> mark chat turns (make finetune)
    special_tokens: ['</s>', '<pad>', '<unk>', '<|im_start|>', '<|im_end|>'],
    sentinel_tokens: 100,     // <extra_id_0> ... <extra_id_99>: each stands for a span cut out of the input
{%- endif %}
    path: 'tokenizer/tokenizer.json',  // where `make tokenizer` writes it
  },

  data: {
    raw_dir: 'data/raw',      // your .txt / .md / .jsonl files (nested folders too); empty = built-in stories
    processed_dir: 'data/processed',  // where `make data` writes train.bin, val.bin and meta.json
    val_split: 0.05,          // fraction of documents held out for validation
    val_path: '',             // or a separate file/folder for validation ('' = split from raw_dir)
{%- if arch == 'gpt' %}
    stride: {{ m.max_length }},             // evaluation window stride in tokens (<= max_length)
{%- endif %}
    sample_size_mb: 5,        // size of the built-in story corpus used when raw_dir is empty
    seed: 1337,               // seed for the sample corpus and the train/val split
  },

  training: {
    batch_size: {{ p.batch_size }},           // sequences per micro-batch
    gradient_accumulation: {{ p.gradient_accumulation }},  // micro-batches per optimizer step
    max_steps: {{ p.max_steps }},          // optimizer steps
    learning_rate: {{ p.learning_rate }},     // peak learning rate (after warmup)
    min_lr: {{ p.min_lr }},           // learning rate at the end of the cosine decay
    warmup_steps: {{ p.warmup_steps }},         // linear warmup from 0 to learning_rate
{%- if arch == 't5' %}
    optimizer: 'adafactor',   // T5's own: each step scales with the weight's size (see training/optimizer.py); or 'adamw'
    weight_decay: 0.0,        // decay on matrices (not on norms); T5 trains without it
    beta1: 0.9,               // AdamW beta1 (with optimizer: 'adamw'; Adafactor has no momentum)
    beta2: 0.95,              // AdamW beta2 (with optimizer: 'adamw')
{%- else %}
    optimizer: 'adamw',       // 'adamw', 'muon' (Muon for hidden matrices, AdamW for the rest) or 'adafactor' (T5's)
    weight_decay: 0.1,        // decay on matrices (not on norms)
    beta1: 0.9,               // AdamW beta1
    beta2: 0.95,              // AdamW beta2
    muon_momentum: 0.95,      // Muon's momentum (with optimizer: 'muon')
{%- endif %}
    grad_clip: 1.0,           // clip the gradient norm to this (0 = off)
    eval_interval: {{ p.eval_interval }},       // evaluate on validation data every N steps
    eval_batches: {{ p.eval_batches }},         // validation batches per evaluation
    log_interval: {{ p.log_interval }},         // log loss / lr / tokens per second every N steps
    seed: 1337,               // seed for initialisation and batch order
    device: 'auto',           // 'auto' (cuda -> mps -> cpu), 'cuda', 'mps' or 'cpu'
    precision: '{{ p.precision }}',        // 'auto' (bf16 where fast, else fp16 on CUDA, else fp32), 'bf16', 'fp16', 'fp32'
    compile: false,           // torch.compile: faster steps after a ~30 s compile (GPU; ~10% on a CPU)
    gradient_checkpointing: false,  // recompute activations in backward: less memory, ~30% slower
    threads: 0,               // CPU threads for torch (0 = one per physical core)
    parallelism: 'auto',      // `make train NPROC=N`: 'ddp' (a model copy per GPU), 'fsdp' (sharded) or 'auto' (ddp while a copy fits)
  },
{% if arch == 'bert' %}
  objective: {
    mask_probability: {{ p.get('mask_probability', 0.15) }},   // share of each sequence's tokens hidden: 80% become [MASK], 10% a random token, 10% stay; the model predicts them
    short_sequence_length: {{ p.get('short_sequence_length', 0) }},  // warm-up: the first short_sequence_steps steps train on sequences this long (more of them: the same tokens per step), then on max_length (0 = off)
    short_sequence_steps: {{ p.get('short_sequence_steps', 0) }},  // so the model first learns to read the words next to a [MASK] (README.md: "What to expect")
  },
{% elif arch == 't5' %}
  objective: {
    noise_density: {{ p.get('noise_density', 0.15) }},      // share of each input's tokens cut out, in spans, each span replaced by a sentinel; the decoder writes them back
    mean_span_length: {{ p.get('mean_span_length', 3.0) }},    // average length of a cut-out span, in tokens
    short_sequence_length: {{ p.get('short_sequence_length', 0) }},  // warm-up: the first short_sequence_steps steps train on inputs this long (more of them: the same tokens per step), then on max_length (0 = off)
    short_sequence_steps: {{ p.get('short_sequence_steps', 0) }},
  },
{% endif %}
{%- if arch != 'bert' %}
  finetune: {                 // `make finetune`: teach the trained model to answer (instruction tuning)
    data_dir: 'data/finetune',  // .jsonl conversations ({"messages": [...]} or {"prompt", "completion"}); empty = built-in set
    base: 'auto',             // the checkpoint to tune: 'auto' (best, else latest) or a .pt path
    max_steps: 1000,          // optimizer steps (or set epochs)
    epochs: 0,                // passes over the conversations instead of max_steps (0 = use max_steps)
    batch_size: 16,           // conversations per micro-batch (padded to the longest)
    gradient_accumulation: 1, // micro-batches per optimizer step
    learning_rate: 0.001,     // peak learning rate after warmup
    min_lr: 0.0001,           // learning rate at the end of the cosine decay
    warmup_steps: 20,         // linear warmup from 0
    weight_decay: 0.0,        // decay on matrices
    max_length: 0,            // longest conversation in tokens (0 = model.max_length); longer ones are cut
    val_split: 0.05,          // share of your conversations held out for validation
    length_warmup: 0.6,       // share of the steps that grow from the shortest conversations to all (0 = off)
    eval_interval: 50,        // evaluate every N steps: loss on the answers, answer accuracy
    eval_batches: 10,         // validation batches per evaluation
    builtin_conversations: 20000,  // size of the built-in instruction set (questions about stories)
    seed: 1337,               // seed of the built-in set, the split and the batch order
{%- if arch == 'gpt' %}
    lora_rank: 0,             // 0 = tune every weight; N = train rank-N LoRA adapters only (training/lora.py)
    lora_alpha: 16,           // LoRA scale: the adapters' update is multiplied by lora_alpha / lora_rank
{%- endif %}
  },
{% endif %}
  checkpoints: {
    dir: 'checkpoints',       // where checkpoints are written
    save_interval: {{ p.save_interval }},       // save every N steps (and always at the end)
    save_total_limit: 3,      // keep the newest N step checkpoints (best.pt is always kept)
    keep_best: true,          // keep best.pt, chosen by validation loss
  },

  logging: {
    dir: 'logs',              // metrics.jsonl (every record of the run) and tensorboard/ go here
    tensorboard: true,        // also write TensorBoard event files (`make tensorboard` shows them)
    progress_bar: true,       // show a progress bar (plain lines when output is not a terminal)
{%- if arch == 'gpt' %}
    sample_tokens: 48,        // at each evaluation, generate this many tokens from generation.prompt (0 = off)
{%- elif arch == 'bert' %}
    sample_tokens: 1,         // at each evaluation, fill in the [MASK]s of generation.prompt (0 = off)
{%- else %}
    sample_tokens: 48,        // at each evaluation, fill in generation.prompt's spans, writing at most this many tokens (0 = off)
{%- endif %}
    dashboard: false,         // serve the live dashboard while training (`make dashboard` works any time)
    dashboard_host: '127.0.0.1',  // this computer only; '0.0.0.0' lets your network watch (read-only)
    dashboard_port: 5050,     // the next free port is used when this one is busy
  },

  plugins: {
    // Training plugins (files in plugins/) that run with `make train`; one that fails warns and
    // training goes on. This project has: {{ training_plugins | join(', ') if training_plugins else 'none (create-llm --plugins wandb,huggingface adds them)' }}.
    enabled: [{% for name in training_plugins %}'{{ name }}'{% if not loop.last %}, {% endif %}{% endfor %}],
  },
{%- if 'wandb' in plugins %}

  wandb: {
    project: 'create-llm',    // the Weights & Biases project the runs go to
    mode: 'auto',             // 'auto' (online when logged in, else offline in logs/wandb), 'online' or 'offline'
  },
{%- endif %}
{%- if 'huggingface' in plugins %}

  huggingface: {
    push_on_best: false,      // also push every new best checkpoint while training (in the background)
  },                          // it pushes to deployment.repo_id when training ends: set that below
{%- endif %}
{%- if 'synthex' in plugins %}

  synthex: {                  // `make synthex`: synthetic documents from an OpenAI-compatible chat API
    base_url: 'http://127.0.0.1:8080/v1',  // e.g. llama.cpp's llama-server, vLLM, Ollama, or 'https://api.openai.com/v1'
    model: '',                // the model name your API serves (required)
    api_key_env: 'SYNTHEX_API_KEY',  // the environment variable holding the API key (never the key itself)
    prompts: 'data/synthex_prompts.txt',  // one prompt per line, used in turn
    output_dir: 'data/raw/synthetic',  // inside data/raw, so `make data` uses the documents
    documents: 100,           // how many documents to have when done (it resumes where it stopped)
    max_tokens: 512,          // the longest answer, in tokens
    temperature: 1.0,         // higher = more varied documents
    price_per_million_tokens: 0.0,  // your API's price, for the cost estimate (0 = not shown)
    timeout: 60.0,            // seconds to wait for one answer
  },
{%- endif %}

  generation: {
{%- if arch == 'gpt' %}
    prompt: 'Once upon a time',  // default prompt for `make generate`
    max_new_tokens: 200,      // tokens to generate
    temperature: 0.8,         // 0 = greedy; higher = more random
    top_k: 50,                // sample from the k most likely tokens (0 = off)
    top_p: 0.95,              // nucleus sampling: smallest set with this total probability (1 = off)
    repetition_penalty: 1.1,  // > 1 discourages repeating tokens already in the context
{%- elif arch == 'bert' %}
    prompt: 'Once upon a time, there was a little [MASK].',  // `make generate` fills in each [MASK]
    top_k: 5,                 // candidates shown for each [MASK], with their probabilities
{%- else %}
    prompt: 'Once upon a time, there was a <extra_id_0> who lived in a <extra_id_1>.',  // `make generate` fills in each sentinel (no sentinel: text-to-text)
    max_new_tokens: 64,       // longest output, in tokens
    temperature: 0.0,         // 0 = greedy (the likeliest output); higher = more random
    top_k: 50,                // sample from the k most likely tokens (0 = off)
    top_p: 0.95,              // nucleus sampling: smallest set with this total probability (1 = off)
    repetition_penalty: 1.0,  // > 1 discourages repeating tokens already in the output
{%- endif %}
  },

  deployment: {
    checkpoint: 'auto',       // what `make export` exports: 'auto' (best, else latest), 'best', 'latest' or a .pt path
{%- if arch == 'gpt' %}
    export_dir: 'export',     // export/hf/ (Hugging Face folder) and export/gguf/ (llama.cpp, Ollama)
{%- else %}
    export_dir: 'export',     // export/hf/: the Hugging Face folder
{%- endif %}
    dtype: 'fp32',            // Hugging Face weights: 'fp32' (exact), 'bf16' or 'fp16' (half the size)
{%- if arch == 'gpt' %}
    gguf_type: 'f16',         // GGUF weights (ARGS="--format gguf"): 'f32', 'f16' or 'q8_0' (8-bit)
{%- endif %}
    repo_id: '',              // `make deploy`: your Hugging Face repository, e.g. 'your-name/{{ cookiecutter.project_slug }}'
    private: true,            // create that repository as private
    replicate_model: '',      // `make deploy ARGS="--target replicate"`: e.g. 'your-name/{{ cookiecutter.project_slug }}'
    license: '{{ {"MIT": "mit", "Apache-2.0": "apache-2.0", "BSD-3-Clause": "bsd-3-clause"}.get(cookiecutter.license, "other") }}',  // license id on the model card (from the project's license)
    language: 'en',           // language of the training text, for the model card
  },
};
