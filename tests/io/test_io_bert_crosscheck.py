"""all-MiniLM-L6-v2 (safetensors, BERT): jaxlab BertEncoder vs Hugging Face BertModel, fp32."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxlab.io import hf
from jaxlab.nn.encoders.bert import BertEncoder, mean_pool

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

TEXTS = ['A man is playing a guitar on the street.', 'The weather is lovely today!']


def test_bert_hidden_states_match_transformers(minilm_dir):
  sd = hf.load_safetensors(minilm_dir / 'model.safetensors')
  cfg = hf.bert_config_from_hf(hf.load_hf_config(minilm_dir))
  params = jax.tree.map(jnp.asarray, hf.bert_params_from_hf(sd, cfg))
  tok = hf.tokenizer_from_json(minilm_dir)
  tok.enable_padding(pad_id=0)
  enc = tok.encode_batch(TEXTS)
  ids = np.array([e.ids for e in enc])
  att = np.array([e.attention_mask for e in enc])
  hidden, pooled = BertEncoder(cfg).apply({'params': params}, jnp.asarray(ids),
                                          padding=jnp.asarray(att, bool))

  from transformers.initialization import no_init_weights
  with no_init_weights():
    model = transformers.BertModel(transformers.BertConfig(**hf.load_hf_config(minilm_dir))).eval()
  model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()}, strict=False)
  with torch.no_grad():
    out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(att))
  ref_h, ref_p = out.last_hidden_state.numpy(), out.pooler_output.numpy()
  real = att.astype(bool)
  rel = np.linalg.norm(np.asarray(hidden)[real] - ref_h[real]) / np.linalg.norm(ref_h[real])
  assert rel <= 1e-4, rel
  assert np.linalg.norm(np.asarray(pooled) - ref_p) / np.linalg.norm(ref_p) <= 1e-4
  # Sentence embeddings are real: the two sentences are not near-duplicates.
  emb = np.array(mean_pool(hidden, jnp.asarray(real)))
  emb /= np.linalg.norm(emb, axis=-1, keepdims=True)
  assert float(emb[0] @ emb[1]) < 0.5
