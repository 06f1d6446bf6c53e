"""Data parallelism: one global batch split across devices, by each
backend's own engine.

keras-nlm never splits batches across devices or averages gradients itself:

- JAX: `keras.distribution.DataParallel`. One program sees the global batch
  sharded over the devices (XLA's SPMD partitioner inserts the gradient
  all-reduce), so every array keeps its global shape.
- TensorFlow: `tf.distribute.MirroredStrategy` (a `TPUStrategy` runs the same
  code). Keras's `fit` splits each global batch into one slice per replica,
  runs the step on each, and sums the replicas' gradients, each scaled by
  `1 / replicas`.
- PyTorch: one process per device started by `torchrun`, with
  `torch.distributed` (gloo on CPUs, NCCL on GPUs). Each process reads its
  rows of every global batch (`DataParallel.shard`), and
  `DistributedDataParallel` averages the gradients during `backward` (see
  `keras_nlm.models.base.Model.train_step`). Keras 3.15 has no PyTorch
  distribution; this follows the design Keras's main branch adopted (its
  trainer forwards through a DDP wrapper and sums the metrics' variables
  across processes at the end of an epoch and of an evaluation), so that
  users keep `model.fit`.

Inside a step, `replica()` says which slice of the global batch the code
holds: `CarriedState` keeps each replica's streams in their own rows, and
the loss divides by the global batch's number of kept tokens.
"""

import contextlib
import functools
import os

import keras


def replica():
    """`(index, count)`: which of `count` equal slices of the global batch
    the code running now holds (`(0, 1)` for the whole batch)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is None:  # a strategy's cross-replica code sees it whole
            return 0, 1
        return context.replica_id_in_sync_group, context.num_replicas_in_sync
    if backend == "torch":
        return _processes()
    return 0, 1  # JAX's one program holds the global batch


def replicas():
    """How many slices each global batch is split into for a step (1 on
    JAX, whose one program holds the global batch)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.distribute.get_strategy().num_replicas_in_sync
    if backend == "torch":
        return _processes()[1]
    return 1


# `(rank, processes)` while a `DataParallel` trains on several PyTorch
# processes. Not `torch.distributed.is_initialized()`: the group outlives a
# training (a second one in the process reuses it; creating it again after
# `destroy_process_group` hangs under torchrun), and the first process then
# evaluates alone.
_torch_processes = None


def _processes():
    return _torch_processes or (0, 1)


def global_sum(value):
    """`value` summed over the replicas of a step (itself on one device)."""
    if replica()[1] == 1:
        return value
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.distribute.get_replica_context().all_reduce("sum", value)
    import torch.distributed as dist

    value = value.detach().clone()
    dist.all_reduce(value)
    return value


def clip_after_summing(optimizer):
    """Makes `optimizer`, in a TensorFlow strategy's replicas, clip the sum
    of the replicas' gradients (one device's gradient), not each replica's
    share: Keras 3.15's TensorFlow optimizer clips the shares and then sums
    them, so a clip that binds changes training (JAX's global view and
    PyTorch's averaged `backward` clip the sum already). Costs a second
    all-reduce of the gradients, only when the optimizer clips."""
    clip = optimizer._clip_gradients  # Keras's one hook between the two
    if not (optimizer.clipnorm or optimizer.global_clipnorm or optimizer.clipvalue):
        return
    if getattr(clip, "_keras_nlm_summed", False):
        return

    def clip_sum(grads):
        count = replica()[1]
        if count == 1:
            return clip(grads)
        # Each replica gets an equal share of the clipped sum, which Keras
        # then sums.
        return [g / count for g in clip(global_sum(list(grads)))]

    clip_sum._keras_nlm_summed = True
    optimizer._clip_gradients = clip_sum


def step_callbacks():
    """Callbacks that `fit`, `evaluate` and `predict` add: under JAX's
    distribution over several devices, one that keeps Keras from running
    the batch-end callbacks in a thread pool. A thread reading a batch's
    logs (multi-device arrays) while the main thread dispatches the next
    step lets the devices' queues take two programs in opposite orders,
    and XLA's CPU devices then wait for each other forever (seen in a
    two-device training under load: "Termination timeout for all gather")."""
    distribution = keras.distribution.distribution()
    if (
        keras.backend.backend() != "jax"
        or distribution is None
        or len(distribution.device_mesh.devices.flat) == 1
    ):
        return []
    return [_InOrder()]


class _InOrder(keras.callbacks.Callback):
    # Keras runs batch-end callbacks in threads only if each one either says
    # it is `async_safe` or has no batch-end method of its own.
    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass


def sum_over_processes(variables):
    """Makes each PyTorch process's variables hold the sum (aggregation
    `"sum"`) or mean (`"mean"`) of all processes' values: the metrics' totals
    and counts, so that every process logs the global batch's numbers. TensorFlow
    and JAX aggregate metrics themselves."""
    if keras.backend.backend() != "torch" or _processes()[1] == 1:
        return
    import torch.distributed as dist

    for variable in variables:
        if variable.aggregation in ("sum", "mean"):
            value = variable.value.detach().clone()
            dist.all_reduce(value)
            if variable.aggregation == "mean":
                value = value / dist.get_world_size()
            variable.assign(value)


def distributed_wrapper(model):
    """PyTorch's `DistributedDataParallel` around `model` while several
    processes train it (built once, kept on the model), else None."""
    if keras.backend.backend() != "torch" or _processes()[1] == 1:
        model.__dict__.pop("_keras_nlm_ddp", None)
        return None
    wrapper = model.__dict__.get("_keras_nlm_ddp")
    if wrapper is None:
        import torch

        # Kept outside Keras's and PyTorch's attribute tracking: the wrapper
        # holds the model, which must not hold it as a sub-module.
        wrapper = torch.nn.parallel.DistributedDataParallel(model)
        model.__dict__["_keras_nlm_ddp"] = wrapper
    return wrapper


class DataParallel:
    """Training on `devices` devices, each holding `1 / devices` of every
    global batch, through the backend's own engine (see the module).

    Build, compile and train the model inside `scope()`; on PyTorch, feed
    each process `shard(batches)`, and only the process where `writes` is
    True writes files. After `close()`, each PyTorch process computes alone
    (the first one evaluates and saves).

    Args:
        devices: how many devices (replicas) share each batch. JAX takes
            its first `devices` devices (on CPUs, start it with
            `XLA_FLAGS=--xla_force_host_platform_device_count=N`); TensorFlow
            its GPUs, or that many logical CPU devices if there are fewer
            GPUs (set before TensorFlow starts); PyTorch needs that many
            processes, started by `torchrun --nproc-per-node N`.
        strategy: TensorFlow only, instead of `devices`: the
            `tf.distribute.Strategy` to train with, such as a TPU's
            `tf.distribute.TPUStrategy(resolver)`; the code it runs is the
            same as under `MirroredStrategy`.

    Example:
    >>> parallel = DataParallel(2)
    >>> with parallel.scope():
    ...     model = RNNLM(10_000, hidden_dim=200)
    ...     model.compile()
    ...     model.fit(parallel.shard(batches))
    """

    def __init__(self, devices=1, strategy=None):
        from keras_nlm.validation import check_positive_int

        self.devices = check_positive_int(devices, "devices")
        self.index = 0
        self._strategy = strategy
        backend = keras.backend.backend()
        if strategy is not None:
            if backend != "tensorflow":
                raise ValueError(
                    "`strategy` is a TensorFlow `tf.distribute.Strategy`; on "
                    f"{backend}, pass `devices`."
                )
            self.devices = strategy.num_replicas_in_sync
            return
        if self.devices == 1:
            return
        if backend == "jax":
            found = keras.distribution.list_devices()
            if len(found) < self.devices:
                raise ValueError(
                    f"devices={self.devices}, but JAX sees {len(found)} "
                    f"({', '.join(found)}). On CPUs, start Python with "
                    f"XLA_FLAGS=--xla_force_host_platform_device_count={self.devices} "
                    "(`keras-nlm train --devices N` sets it)."
                )
            self._strategy = keras.distribution.DataParallel(
                devices=found[: self.devices]
            )
        elif backend == "tensorflow":
            self._strategy = _mirrored_strategy(self.devices)
        else:
            self.index = _torch_process_group(self.devices)

    @property
    def writes(self):
        """Whether this process writes the run's files (the first one)."""
        return self.index == 0

    def scope(self):
        if self._strategy is None:
            return contextlib.nullcontext()
        return self._strategy.scope()

    def check_batch_size(self, batch_size):
        if batch_size % self.devices:
            raise ValueError(
                f"devices={self.devices} must divide the batch size "
                f"{batch_size}: each device takes an equal share of every batch."
            )

    def shard(self, batches):
        """What this process feeds `fit` of the `PyDataset` `batches`: on
        PyTorch, its rows of every batch; elsewhere the global batch, which
        the engine splits. A batch whose rows the devices cannot share
        equally (an epoch's last, partial one) leaves out its last rows, at
        most `devices - 1`."""
        if self.devices == 1:
            return batches
        if keras.backend.backend() != "torch":
            return _Rows(batches, 0, 1, self.devices)
        return _Rows(batches, self.index, self.devices, self.devices)

    def close(self):
        """Waits for every PyTorch process; then each computes alone."""
        global _torch_processes
        if keras.backend.backend() == "torch" and self.devices > 1:
            import torch.distributed as dist

            dist.barrier()
            _torch_processes = None


@functools.cache
def _mirrored_strategy(devices):
    # One per process: a second strategy over the same devices reuses the
    # first one's collective keys, and their all-reduces mix up.
    import tensorflow as tf

    kind = "GPU"
    if len(tf.config.list_physical_devices("GPU")) < devices:
        # Listing logical devices starts TensorFlow's runtime: split the CPU
        # into `devices` logical ones first.
        kind, cpu = "CPU", tf.config.list_physical_devices("CPU")[0]
        split = tf.config.get_logical_device_configuration(cpu) or []
        if len(split) < devices:
            try:
                tf.config.set_logical_device_configuration(
                    cpu, [tf.config.LogicalDeviceConfiguration()] * devices
                )
            except RuntimeError:
                raise ValueError(
                    f"devices={devices}: TensorFlow has fewer GPUs, and it "
                    "started before its CPU could be split into that many "
                    "devices; start the training in a fresh process, before "
                    "anything else runs TensorFlow."
                ) from None
    names = [d.name for d in tf.config.list_logical_devices(kind)]
    return tf.distribute.MirroredStrategy(names[:devices])


def _torch_process_group(devices):
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if "WORLD_SIZE" not in os.environ:
            raise ValueError(
                f"devices={devices} on PyTorch trains in {devices} processes: "
                f"start them with `torchrun --nproc-per-node {devices} ...` "
                "(`keras-nlm train --devices N` does)."
            )
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo")
    if dist.get_world_size() != devices:
        raise ValueError(
            f"devices={devices}, but {dist.get_world_size()} PyTorch processes "
            f"were started: start {devices} (`torchrun --nproc-per-node {devices}`)."
        )
    global _torch_processes
    _torch_processes = dist.get_rank(), devices
    return dist.get_rank()


class _Rows(keras.utils.PyDataset):
    """The `index`-th of `count` equal slices of each batch of `batches`
    (the first rows first, as TensorFlow and JAX split a batch), each batch
    cut to a multiple of `devices` rows."""

    def __init__(self, batches, index, count, devices):
        super().__init__()
        self.batches, self.index, self.count = batches, index, count
        self.devices = devices

    def __len__(self):
        return len(self.batches)

    @property
    def tf_signature(self):
        # The wrapped batches' (see `CheckedData.get_tf_dataset`), if any.
        return getattr(self.batches, "tf_signature", None)

    def __getitem__(self, i):
        batch = self.batches[i]
        rows = keras.tree.flatten(batch)[0].shape[0] // self.devices * self.devices
        size = rows // self.count
        return keras.tree.map_structure(
            lambda array: array[self.index * size : (self.index + 1) * size], batch
        )
