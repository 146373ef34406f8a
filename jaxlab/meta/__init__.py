"""Meta-learning: gradient updates that emulate prompting (Zhang, Choshen, Andreas; arXiv 2506.20989).

inner.py       the inner SGD step on a context and the parameter subset it moves (all / rank-1 / LoRA).
objectives.py  LC (KL to the frozen prompted base) and LG (gold NLL) after the step; second-order,
               first-order and Hessian-vector meta-gradients; tasks accumulated sequentially.
"""

from jaxlab.meta.inner import InnerConfig, MetaModel, inner_update, sequence_nll
from jaxlab.meta.objectives import (answer_correct, answer_logprob, make_loss_fn, meta_grad, meta_loss,
                                    outer_loss, task_loss, teacher_logprobs)
