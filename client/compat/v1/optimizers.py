"""TF1's optimizers (``tf.train.*Optimizer``) with TensorFlow's update rules, slot variables and
names (tf1-graph-mode.md §6), recorded as ordinary graph ops: a training step is one run.

Each update follows the arithmetic of TF's kernels (``ApplyAdam`` & co.) step for step, so
float32 results agree with TensorFlow's to rounding. Every variable write reads the values
as of the start of the run and uses the assign's result where TF reads the updated slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from layerserve.compat.v1.surface import base_dtype, new_variable, op_name, tf, unique_name, variable_names

__all__ = [
    "AdagradOptimizer", "AdamOptimizer", "GradientDescentOptimizer", "MomentumOptimizer", "Optimizer",
    "RMSPropOptimizer",
]

_FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64")


class Optimizer:
    """``tf.compat.v1.train.Optimizer``: compute_gradients, apply_gradients, minimize, slots."""

    GATE_NONE, GATE_OP, GATE_GRAPH = 0, 1, 2

    def __init__(self, use_locking: bool, name: str) -> None:
        if not name:
            raise ValueError("Must specify the optimizer name")
        self._use_locking = use_locking
        self._name = name
        self._slots: dict[str, dict[str, Any]] = {}
        self._non_slots: dict[str, Any] = {}

    def get_name(self) -> str:
        return self._name

    # ---- gradients -----------------------------------------------------------------------
    def compute_gradients(self, loss: Any, var_list: Any = None, gate_gradients: int = GATE_OP,
                          aggregation_method: Any = None, colocate_gradients_with_ops: bool = False,
                          grad_loss: Any = None) -> list[tuple[Any, Any]]:
        ops = tf()
        if callable(loss):
            raise RuntimeError("`loss` passed to Optimizer.compute_gradients should be a function when eager "
                               "execution is enabled.") from None
        _check_float(loss)
        variables = _default_var_list(ops) if var_list is None else list(var_list)
        if not variables:
            raise ValueError("No variables to optimize.")
        # gating, aggregation and colocation change nothing here: a step is one fused run
        grads = ops.gradients(loss, variables, grad_ys=None if grad_loss is None else [grad_loss])
        return list(zip(grads, variables, strict=True))

    def minimize(self, loss: Any, global_step: Any = None, var_list: Any = None, gate_gradients: int = GATE_OP,
                 aggregation_method: Any = None, colocate_gradients_with_ops: bool = False, name: str | None = None,
                 grad_loss: Any = None) -> Any:
        pairs = self.compute_gradients(loss, var_list=var_list, gate_gradients=gate_gradients,
                                       aggregation_method=aggregation_method,
                                       colocate_gradients_with_ops=colocate_gradients_with_ops, grad_loss=grad_loss)
        if not [v for g, v in pairs if g is not None]:
            raise ValueError("No gradients provided for any variable, check your graph for ops that do not support "
                             f"gradients, between variables {[str(v) for _, v in pairs]} and loss {loss}.")
        return self.apply_gradients(pairs, global_step=global_step, name=name)

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Any, Any]], global_step: Any = None,
                        name: str | None = None) -> Any:
        ops = tf()
        pairs = [(None if g is None else ops.convert_to_tensor(g), v) for g, v in tuple(grads_and_vars)]
        if not pairs:
            raise ValueError("No variables provided.")
        var_list = [v for g, v in pairs if g is not None]
        if not var_list:
            raise ValueError(f"No gradients provided for any variable: {[str(v) for _, v in pairs]}.")
        self._create_slots(var_list)
        name = name or self._name
        updates = []
        with ops.name_scope(name):
            self._prepare()
            for grad, var in pairs:
                if grad is not None:
                    with ops.name_scope("update_" + op_name(var)):
                        updates.append(self._apply_dense(grad, var))
        if global_step is None:
            step = self._finish(updates, name)
        else:
            with ops.control_dependencies([self._finish(updates, "update")]):
                step = ops.assign_add(global_step, 1, name=name).op
        train_ops = ops.get_collection_ref(ops.GraphKeys.TRAIN_OP)
        if step not in train_ops:
            train_ops.append(step)
        return step

    # ---- slots ---------------------------------------------------------------------------
    def get_slot_names(self) -> list[str]:
        return sorted(self._slots)

    def get_slot(self, var: Any, name: str) -> Any:
        return self._slots.get(name, {}).get(op_name(var))

    def variables(self) -> list[Any]:
        slots = [v for table in self._slots.values() for v in table.values()]
        return sorted([*self._non_slots.values(), *slots], key=lambda v: str(v.name))

    def _slot(self, var: Any, slot_name: str, initializer: Any) -> Any:
        """``<var op name>/<optimizer name>[_k]`` under the current variable scope."""
        table = self._slots.setdefault(slot_name, {})
        key = op_name(var)
        if key not in table:
            ops = tf()
            scope = ops.get_variable_scope().name
            prefix = f"{scope}/{key}" if scope else key
            taken = {n[len(prefix) + 1:] for n in variable_names() if n.startswith(prefix + "/")}
            table[key] = new_variable(prefix, unique_name(self._name, taken), var.shape.as_list(),
                                      base_dtype(var.dtype), initializer)
        return table[key]

    def _zeros_slot(self, var: Any, slot_name: str) -> Any:
        return self._slot(var, slot_name, tf().zeros_initializer())

    def _non_slot(self, name: str, value: float) -> Any:
        """A float32 variable of the optimizer (Adam's beta powers), named in the current name scope."""
        if name not in self._non_slots:
            ops = tf()
            scope = ops.get_default_graph().get_name_scope()
            prefix = f"{scope}/" if scope else ""
            taken = {n[len(prefix):] for n in variable_names() if n.startswith(prefix) and "/" not in n[len(prefix):]}
            self._non_slots[name] = new_variable(scope, unique_name(name, taken), [], ops.float32,
                                                 ops.constant_initializer(value))
        return self._non_slots[name]

    # ---- what each optimizer defines -------------------------------------------------------
    def _create_slots(self, var_list: list[Any]) -> None:
        """Make the slots each variable needs, in TF's order."""

    def _prepare(self) -> None:
        """Turn hyperparameters into tensors once per apply."""

    def _apply_dense(self, grad: Any, var: Any) -> Any:
        raise NotImplementedError

    def _finish(self, update_ops: list[Any], name: str) -> Any:
        return tf().group(*update_ops, name=name)

    @staticmethod
    def _cast(value: Any, var: Any) -> Any:
        return tf().cast(value, base_dtype(var.dtype))


def _default_var_list(ops: Any) -> list[Any]:
    extra = getattr(ops.GraphKeys, "TRAINABLE_RESOURCE_VARIABLES", None)
    found = list(ops.trainable_variables()) + (list(ops.get_collection(extra)) if extra else [])
    unique: list[Any] = []
    for v in found:
        if all(v is not u for u in unique):
            unique.append(v)
    return unique


def _check_float(loss: Any) -> None:
    dtype = base_dtype(getattr(loss, "dtype", None))
    name = getattr(dtype, "name", str(dtype))
    if name not in _FLOAT_NAMES:
        raise ValueError(f"Invalid type {dtype!r} for {getattr(loss, 'name', loss)}, expected: "
                         "[tf.float16, tf.bfloat16, tf.float32, tf.float64].")


def _tensor(value: Any, name: str) -> Any:
    """A hyperparameter as a tensor; TF accepts a callable giving it, too."""
    return tf().convert_to_tensor(value() if callable(value) else value, name=name)


class GradientDescentOptimizer(Optimizer):
    def __init__(self, learning_rate: Any, use_locking: bool = False, name: str = "GradientDescent") -> None:
        super().__init__(use_locking, name)
        self._learning_rate = learning_rate

    def _prepare(self) -> None:
        self._lr_t = _tensor(self._learning_rate, "learning_rate")

    def _apply_dense(self, grad: Any, var: Any) -> Any:
        return tf().assign_sub(var, self._cast(self._lr_t, var) * grad)


class MomentumOptimizer(Optimizer):
    """``accum = accum * momentum + g``; ``var -= lr * accum`` (Nesterov: ``g * lr + accum * momentum * lr``)."""

    def __init__(self, learning_rate: Any, momentum: Any, use_locking: bool = False, name: str = "Momentum",
                 use_nesterov: bool = False) -> None:
        super().__init__(use_locking, name)
        self._learning_rate, self._momentum, self._use_nesterov = learning_rate, momentum, use_nesterov

    def _create_slots(self, var_list: list[Any]) -> None:
        for v in var_list:
            self._zeros_slot(v, "momentum")

    def _prepare(self) -> None:
        self._lr_t = _tensor(self._learning_rate, "learning_rate")
        self._momentum_t = _tensor(self._momentum, "momentum")

    def _apply_dense(self, grad: Any, var: Any) -> Any:
        ops = tf()
        lr, momentum = self._cast(self._lr_t, var), self._cast(self._momentum_t, var)
        accum = ops.assign(self.get_slot(var, "momentum"), self.get_slot(var, "momentum") * momentum + grad)
        step = grad * lr + accum * momentum * lr if self._use_nesterov else accum * lr
        return ops.group(ops.assign_sub(var, step), accum)


class AdamOptimizer(Optimizer):
    """TF1's Adam with the epsilon-hat form: ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``,
    ``var -= m * lr_t / (sqrt(v) + epsilon)``; ``beta1_power``/``beta2_power`` per optimizer."""

    def __init__(self, learning_rate: Any = 0.001, beta1: Any = 0.9, beta2: Any = 0.999, epsilon: Any = 1e-8,
                 use_locking: bool = False, name: str = "Adam") -> None:
        super().__init__(use_locking, name)
        self._lr, self._beta1, self._beta2, self._epsilon = learning_rate, beta1, beta2, epsilon

    def _create_slots(self, var_list: list[Any]) -> None:
        self._non_slot("beta1_power", float(self._beta1))
        self._non_slot("beta2_power", float(self._beta2))
        for v in var_list:
            self._zeros_slot(v, "m")
            self._zeros_slot(v, "v")

    def _prepare(self) -> None:
        self._lr_t = _tensor(self._lr, "learning_rate")
        self._beta1_t = _tensor(self._beta1, "beta1")
        self._beta2_t = _tensor(self._beta2, "beta2")
        self._epsilon_t = _tensor(self._epsilon, "epsilon")

    def _apply_dense(self, grad: Any, var: Any) -> Any:
        ops = tf()
        b1_power, b2_power = (self._cast(self._non_slots[k], var) for k in ("beta1_power", "beta2_power"))
        lr, b1, b2, eps = (self._cast(t, var) for t in (self._lr_t, self._beta1_t, self._beta2_t, self._epsilon_t))
        alpha = lr * ops.sqrt(1 - b2_power) / (1 - b1_power)
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        m_t = ops.assign(m, m + (grad - m) * (1 - b1))
        v_t = ops.assign(v, v + (grad * grad - v) * (1 - b2))
        update = ops.assign_sub(var, (m_t * alpha) / (ops.sqrt(v_t) + eps))
        return ops.group(update, m_t, v_t)

    def _finish(self, update_ops: list[Any], name: str) -> Any:
        ops = tf()
        with ops.control_dependencies(update_ops):
            b1_power, b2_power = self._non_slots["beta1_power"], self._non_slots["beta2_power"]
            new_b1 = ops.assign(b1_power, b1_power * self._beta1_t)
            new_b2 = ops.assign(b2_power, b2_power * self._beta2_t)
        return ops.group(*update_ops, new_b1, new_b2, name=name)


class AdagradOptimizer(Optimizer):
    """``accum += g²``; ``var -= g * lr * rsqrt(accum)``; the accumulator starts at 0.1."""

    def __init__(self, learning_rate: Any, initial_accumulator_value: float = 0.1, use_locking: bool = False,
                 name: str = "Adagrad") -> None:
        if initial_accumulator_value <= 0.0:
            raise ValueError(f"initial_accumulator_value must be positive: {initial_accumulator_value}")
        super().__init__(use_locking, name)
        self._learning_rate, self._initial = learning_rate, initial_accumulator_value

    def _create_slots(self, var_list: list[Any]) -> None:
        for v in var_list:
            self._slot(v, "accumulator", tf().constant_initializer(self._initial))

    def _prepare(self) -> None:
        self._lr_t = _tensor(self._learning_rate, "learning_rate")

    def _apply_dense(self, grad: Any, var: Any) -> Any:
        ops = tf()
        accum = ops.assign_add(self.get_slot(var, "accumulator"), grad * grad)
        update = ops.assign_sub(var, grad * self._cast(self._lr_t, var) * ops.rsqrt(accum))
        return ops.group(update, accum)


class RMSPropOptimizer(Optimizer):
    """``ms += (g² - ms) * (1 - decay)``; ``mom = mom * momentum + g * lr / sqrt(ms + eps)``
    (centered: ``mg += (g - mg) * (1 - decay)``, denominator ``sqrt(ms - mg² + eps)``); ``var -= mom``."""

    def __init__(self, learning_rate: Any, decay: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-10,
                 use_locking: bool = False, centered: bool = False, name: str = "RMSProp") -> None:
        super().__init__(use_locking, name)
        self._learning_rate, self._decay, self._momentum = learning_rate, decay, momentum
        self._epsilon, self._centered = epsilon, centered

    def _create_slots(self, var_list: list[Any]) -> None:
        for v in var_list:
            self._slot(v, "rms", tf().ones_initializer())
            if self._centered:
                self._zeros_slot(v, "mg")
            self._zeros_slot(v, "momentum")

    def _prepare(self) -> None:
        self._lr_t = _tensor(self._learning_rate, "learning_rate")
        self._decay_t = _tensor(self._decay, "decay")
        self._momentum_t = _tensor(self._momentum, "momentum")
        self._epsilon_t = _tensor(self._epsilon, "epsilon")

    def _apply_dense(self, grad: Any, var: Any) -> Any:
        ops = tf()
        lr, rho, momentum, eps = (self._cast(t, var) for t in (self._lr_t, self._decay_t, self._momentum_t,
                                                               self._epsilon_t))
        rms, mom = self.get_slot(var, "rms"), self.get_slot(var, "momentum")
        ms_t = ops.assign(rms, rms + (grad * grad - rms) * (1 - rho))
        denom = ms_t + eps
        written = [ms_t]
        if self._centered:
            mg = self.get_slot(var, "mg")
            mg_t = ops.assign(mg, mg + (grad - mg) * (1 - rho))
            denom = (ms_t - mg_t * mg_t) + eps
            written.append(mg_t)
        mom_t = ops.assign(mom, mom * momentum + (grad * lr) / ops.sqrt(denom))
        return ops.group(ops.assign_sub(var, mom_t), mom_t, *written)
