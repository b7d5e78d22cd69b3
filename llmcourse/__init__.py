"""llmcourse: the helper package of "The Rise of Large Language Models".

Each chapter builds its idea inline, cell by cell; the final version of that idea lives
here, one concept per module, so that later chapters import it instead of pasting it:

    offline     offline models and data (SmolLM2, MiniLM, Shakespeare), cached and checksummed
    notebook    notebook set-up: seeding, quiet libraries, rounded printing
    plotting    figures with titles and labelled axes
    ngram       chapter 1: a smoothed character n-gram language model
    rnn         chapter 1: a character-level recurrent language model
    exercises   exercise checks, one module per chapter (exercises.ch01, ...)
"""

__version__ = "0.1.0"
