"""Take a trained model elsewhere: a Hugging Face folder, a GGUF file, the Hub, Replicate.

    hf.py         checkpoint -> export/hf/ (gpt: LlamaForCausalLM, bert: BertForMaskedLM, t5:
                  T5ForConditionalGeneration; + tokenizer files, no custom code)
    card.py       the model card (README.md with the Hub's YAML metadata)
    gguf.py       gpt: checkpoint -> export/gguf/*.gguf + an Ollama Modelfile (llama.cpp)
    hub.py        export/hf/ -> a Hugging Face Hub repository (pre-flight checks, retries)
    replicate.py  export/hf/ -> deploy/replicate/ (cog.yaml + predictor) for Replicate
    cog_predictor.py, cog_fill_mask.py, cog_text2text.py   the predictor Replicate runs for gpt,
                  bert, t5 (copied as deploy/replicate/predict.py; a project has its own one)

The entry point is deploy.py (`make export`, `make deploy`). The package is `exporters`, not
`export`, because export/ is the folder the exports are written to.
"""
