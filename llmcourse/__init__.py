"""llmcourse: the helper package of "The Rise of Large Language Models".

Each chapter builds its idea inline, cell by cell; the final version of that idea lives
here, one concept per module, so that later chapters import it instead of pasting it:

    offline       offline models and data (SmolLM2, MiniLM, Shakespeare, GPT-2's tokenizer
                  files), cached with checked manifests
    checkpoints   copying weights between our modules and reference ones, key by key
    notebook      notebook set-up: seeding, quiet libraries, rounded printing
    plotting      figures with titles and labelled axes
    ngram         ch. 1: smoothed character n-gram language models
    rnn           ch. 1: a character-level recurrent language model
    tokenization  ch. 2: character, word and byte-level BPE tokenizers
    embedding     ch. 2: embedding lookup, one-hot products, cosine similarity
    attention     ch. 3: softmax, causal masks, scaled dot-product attention
    multihead     ch. 4: multi-head attention
    positional    ch. 5: sinusoidal, learned and rotary position encodings
    norm          ch. 6: layer normalization
    feedforward   ch. 6: GELU, the position-wise feed-forward network, pre-/post-norm blocks
    encoder       ch. 7: a BERT encoder that loads all-MiniLM-L6-v2
    gpt           ch. 7: a GPT-2 decoder that loads and saves Hugging Face checkpoints
    training      ch. 8: next-token loss, batches (memory-mapped token files too), schedule,
                  training loop
    kvcache       ch. 9: the key-value cache shared by the decoders, their input checks
    generation    ch. 9: greedy, temperature, top-k, top-p, repetition penalty
    pipelines     ch. 10: hub reachability, captured warnings, mean pooling, semantic search
    scaling       ch. 11: parameter counts of published models, power laws
    llama         ch. 12: a Llama-style decoder that runs SmolLM2-135M-Instruct
    lora          ch. 13: low-rank adapters, merged back into the base weights
    alignment     ch. 13: supervised fine-tuning with the prompt masked, the DPO loss
    quantization  ch. 14: number formats, GGUF Q4_1/Q8_0 decoding, int8 and 4-bit weights
    speculative   ch. 14: speculative decoding, greedy and sampled
    memory        ch. 15: the memory arithmetic of training, a peak-memory tracker
    distributed   ch. 15: process groups, DDP/FSDP wrapping, no_sync accumulation, torchrun
    parallel_checks  ch. 15: the equality experiments the chapter runs under torchrun
    train         ch. 15: python -m llmcourse.train, one process or many under torchrun
    exercises     exercise checks, one module per chapter (exercises.ch01, ...)
    teaching      the teaching kit: student edition, grader, teacher guide
"""

import warnings

# tqdm.auto (imported by transformers) warns in notebooks when ipywidgets is absent; the
# course prints no widgets, so the warning is noise (set here so any llmcourse import does it).
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
