"""The structural judgements: fcnkit's own (students run them in the notebook and with
``python -m fcnkit check``, with the same messages), given the run's context."""
from __future__ import annotations

from fcnkit import judges as student
from fcnkit.judges import OUTPUT_SIZES
from fcnkit.records import CopyParams, Structure

from .context import Context
from .registry import judgement


@judgement("fcn32s_vgg_layers", "fcn8s_vgg_layers")
def vgg_layers(s: Structure, ctx: Context) -> str:
    return student.judge_vgg_layers(s, ctx.n_class)


@judgement("fcn32s_head", "fcn8s_head")
def head(s: Structure, ctx: Context) -> str:
    return student.judge_head(s, ctx.n_class)


@judgement("fcn32s_output_shape", "fcn8s_output_shape")
def output_shape(s: Structure, ctx: Context) -> str:
    return student.judge_output_shape(s, ctx.n_class, OUTPUT_SIZES)


@judgement("fcn32s_copy_params")
def copy_params(c: CopyParams, ctx: Context) -> str:
    return student.judge_copy_params(c, ctx.expected_copy())
