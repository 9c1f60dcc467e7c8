"""Beam jobs on a dask.distributed cluster: the one the args name, else a LocalCluster started for the job.

    --runner=DaskRunner
        [--dask_client_address=tcp://HOST:8786 | --dask_scheduler_file=FILE]   (Beam's DaskOptions)
        [--dask_workers=N] [--dask_threads_per_worker=T]   (the LocalCluster's; default: a process per core)
        [--dask_npartitions=N | --dask_partition_size=N]   (Beam's DaskOptions: how the job's input is split)

Workers open the model, the recordings and the output folder by the paths the job was given, so those must
be where every worker sees them: a shared file system (absolute paths) or gs://. docs/scale.md has a local
and a SLURM example.
"""

import contextlib
import logging
import os
from typing import Iterator, List, Optional, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from components.on_dask import DASK_RUNNER, runs_on_dask

_log = logging.getLogger("capuchin.dask")


class LocalClusterOptions(PipelineOptions):
    """The LocalCluster started when the args name no scheduler (Beam's own default would be a LocalCluster
    with Dask's defaults, left running after the job)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--dask_workers", type=int, default=None,
                            help="worker processes of the LocalCluster (default: one per core)")
        parser.add_argument("--dask_threads_per_worker", type=int, default=1,
                            help="threads in each worker process of the LocalCluster")


def _progress_logging():
    """A worker plugin: our progress lines (INFO) are logged on every worker, as they are in the runners."""
    import distributed

    class ProgressLogging(distributed.WorkerPlugin):
        def setup(self, worker):
            logging.getLogger("capuchin").setLevel(logging.INFO)

    return ProgressLogging()


def with_full_runner_name(beam_args: Sequence[str]) -> List[str]:
    """The args with `--runner=DaskRunner` (or `--runner DaskRunner`) spelt as the class path Beam needs."""
    args = list(beam_args)
    for i, arg in enumerate(args):
        if arg.startswith("--runner=") and runs_on_dask([arg]):
            args[i] = f"--runner={DASK_RUNNER}"
        elif arg == "--runner" and i + 1 < len(args) and runs_on_dask([arg, args[i + 1]]):
            args[i + 1] = DASK_RUNNER
    return args


@contextlib.contextmanager
def cluster_for(beam_args: Sequence[str], partition_size: Optional[int] = None,
                partitions_per_thread: Optional[int] = None) -> Iterator[List[str]]:
    """Beam args for a job, with the Dask cluster they name up while the job runs. Args for other runners
    come back as given.

    Args:
      beam_args: the job's Beam args.
      partition_size: unless the args choose, elements per Dask partition (a partition is one task, and
        the DaskRunner's Reshuffle does not split one): counting gives each recording its own.
      partitions_per_thread: or, unless the args choose, this many partitions per worker thread
        (ingestion: many light clips, one shard per partition).

    Yields:
      The args with the runner's class path, the scheduler's address and the partitioning.
    """
    if not runs_on_dask(beam_args):
        yield list(beam_args)
        return
    import distributed
    from apache_beam.runners.dask.dask_runner import DaskOptions

    args = with_full_runner_name(beam_args)
    options = PipelineOptions(args)
    given = options.view_as(DaskOptions)
    cluster = None
    if given.address or given.scheduler_file:
        client = distributed.Client(address=given.address, scheduler_file=given.scheduler_file)
    else:
        # distributed logs every scheduler and worker event at INFO: its warnings are what a job's user needs.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        local = options.view_as(LocalClusterOptions)
        cluster = distributed.LocalCluster(n_workers=local.dask_workers or os.cpu_count() or 1,
                                           threads_per_worker=local.dask_threads_per_worker, processes=True,
                                           dashboard_address=":0")
        client = distributed.Client(cluster)
        args.append(f"--dask_client_address={cluster.scheduler_address}")
    try:
        # The workers' progress lines ('[done/total] recording: calls ...', one count per worker) show here.
        client.register_plugin(_progress_logging())
        client.forward_logging("capuchin", level=logging.INFO)
        threads = sum(client.nthreads().values())
        _log.info("Dask scheduler %s: %d workers, %d threads", client.scheduler.address, len(client.nthreads()),
                  threads)
        if not (given.npartitions or given.partition_size):
            if partition_size:
                args.append(f"--dask_partition_size={partition_size}")
            elif partitions_per_thread:
                args.append(f"--dask_npartitions={max(threads, 1) * partitions_per_thread}")
        yield args
    finally:
        # The DaskRunner connects a client of its own and leaves it open; it is the default client now.
        try:
            runner_client = distributed.default_client()
        except ValueError:
            runner_client = None
        if runner_client is not None and runner_client is not client:
            runner_client.close()
        client.close()
        if cluster is not None:
            # Workers that imported TensorFlow outlive the nanny's 4 s grace and are killed: the job is done.
            logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
            cluster.close()
