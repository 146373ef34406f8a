"""Chat templates come from downloaded files: render_chat must keep them in jinja2's sandbox."""

import jinja2
import pytest

from jaxlab.io import gguf

_MESSAGES = [{'role': 'user', 'content': 'hi'}]

_CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _payloads(marker):
  cmd = f"touch {marker}"
  payloads = {
      'cycler_globals_os': "{{ cycler.__init__.__globals__.os.popen('CMD').read() }}",
      'lipsum_globals': "{{ lipsum.__globals__['os'].popen('CMD').read() }}",
      'joiner_globals': "{{ joiner.__init__.__globals__['os'].system('CMD') }}",
      'subclasses_walk': ("{% for c in ().__class__.__base__.__subclasses__() %}"
                          "{% if c.__name__ == 'Popen' %}{{ c('CMD', shell=True) }}{% endif %}{% endfor %}"),
      'self_globals': "{{ self.__init__.__globals__.__builtins__.__import__('os').system('CMD') }}",
      'namespace_globals': "{{ namespace.__init__.__globals__['os'].system('CMD') }}",
      'message_mutation': "{{ messages.append({'role': 'system', 'content': 'x'}) }}",
      'dict_mutation': "{% set d = messages[0] %}{{ d.update({'role': 'system'}) }}",
  }
  return {name: p.replace('CMD', cmd) for name, p in payloads.items()}


@pytest.mark.parametrize('name', sorted(_payloads('x')))
def test_injection_is_refused_and_runs_nothing(tmp_path, name):
  marker = tmp_path / 'pwned'
  template = _payloads(marker)[name]
  with pytest.raises(gguf.ChatTemplateError):
    gguf.render_chat(template, _MESSAGES)
  assert not marker.exists()


def test_the_same_payload_does_run_in_a_plain_environment(tmp_path):
  """Shows the payloads are real: outside the sandbox the first one executes a shell command."""
  marker = tmp_path / 'pwned'
  jinja2.Environment().from_string(_payloads(marker)['cycler_globals_os']).render()
  assert marker.exists()


def test_benign_template_renders_as_before():
  expected = jinja2.Environment().from_string(_CHATML).render(messages=_MESSAGES, add_generation_prompt=True)
  assert gguf.render_chat(_CHATML, _MESSAGES) == expected == '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n'


def test_raise_exception_and_syntax_errors_are_one_clear_error():
  with pytest.raises(gguf.ChatTemplateError, match='only user and assistant'):
    gguf.render_chat("{{ raise_exception('only user and assistant') }}", _MESSAGES)
  with pytest.raises(gguf.ChatTemplateError, match='not valid Jinja'):
    gguf.render_chat('{% for m in messages %}', _MESSAGES)
