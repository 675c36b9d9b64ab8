"""The ``patina`` command line. It owns the terminal: progress, summary and exit status.

Exit status of ``patina run``: 0 every item restored; 3 partial (some items failed);
4 every item failed, or the output cannot be written (the path is named); 2 bad usage,
configuration or manifest, or the output held by another live run; 130 / 143 stopped by
SIGINT / SIGTERM (what was done is recorded; a rerun finishes); 1 the run itself broke.
With ``--json`` every exit prints JSON on stdout (``{"status": "error", ...}`` for failures).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

from patina import __version__
from patina.flows import models_command, train_command
from patina.flows.environment import apply_defaults
from patina.manifests.redaction import redact

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL, EXIT_ALL_FAILED = 0, 1, 2, 3, 4
STATUS_EXIT = {"completed": EXIT_OK, "partial": EXIT_PARTIAL, "failed": EXIT_ALL_FAILED}
OUTPUT_CONFIG_HELP = "pipeline.toml whose [storage] (options, secret_block) reaches OUTPUT (default: the environment's)"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

log = logging.getLogger("patina")
VERIFY_HELP = "also check each derivative's sha256 (reads them all), not only that it is there with its size"


def _output_options(args: argparse.Namespace) -> dict:
    """Storage options for OUTPUT from ``--config`` (its ``[storage]``: options, secret block), else none."""
    if not getattr(args, "config", None):
        return {}
    from patina.flows.config import load_config
    from patina.flows.credentials import storage_options

    return storage_options(load_config(args.config))


def _uri(location: str) -> str:
    """A URI as given, or a local path made absolute (runs must not depend on the working directory)."""
    return location if "://" in location else os.path.abspath(location)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="patina", description="Restore whole photo archives.")
    parser.add_argument("--version", action="version", version=f"patina {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging; Ray's and Prefect's messages on the terminal too"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="restore every item of a manifest")
    run.add_argument("manifest", help="manifest URI (local path, s3://..., ...)")
    run.add_argument("--output", "-o", required=True, help="output URI; derivatives and _provenance/ go here")
    run.add_argument("--config", "-c", help="pipeline.toml (defaults when left out)")
    run.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    run.add_argument("--num-cpus", type=int, help="CPUs for a local Ray instance (default: all)")
    run.add_argument("--json", action="store_true", help="print the run summary as JSON on stdout")
    run.add_argument("--all", action="store_true", help="run every item, even those already restored unchanged")
    run.add_argument("--verify", action="store_true", help=VERIFY_HELP)
    run.add_argument(  # also after the command (the global flag keeps working before it)
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="Ray's and Prefect's messages too"
    )
    plan = commands.add_parser("plan", help="show what `patina run` would do, from the provenance under OUTPUT")
    plan.add_argument("manifest", help="manifest URI")
    plan.add_argument("--output", "-o", required=True, help="output URI of earlier runs")
    plan.add_argument("--config", "-c", help="pipeline.toml (defaults when left out)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")
    plan.add_argument("--verify", action="store_true", help=VERIFY_HELP)
    serve = commands.add_parser("serve", help="serve restore-collection on a schedule (runs until stopped)")
    serve.add_argument("manifest", help="manifest URI")
    serve.add_argument("--output", "-o", required=True, help="output URI")
    serve.add_argument("--config", "-c", help="pipeline.toml (defaults when left out)")
    serve.add_argument("--cron", default="0 2 * * *", help="cron schedule (default: nightly at 02:00)")
    serve.add_argument("--timezone", default="UTC", help="IANA time zone of the schedule (default: UTC)")
    serve.add_argument("--name", default="nightly", help="deployment name (default: nightly)")
    serve.add_argument("--ray-address", help="Ray cluster the runs join (default: a local Ray per run)")
    report = commands.add_parser("report", help="write the static HTML report of a run")
    report.add_argument("output", help="output URI holding _provenance/")
    report.add_argument("--run", help="run id (default: the latest run)")
    report.add_argument("--config", "-c", help=OUTPUT_CONFIG_HELP)
    prov = commands.add_parser("provenance", help="work with the provenance log under an output")
    prov_commands = prov.add_subparsers(dest="provenance_command", required=True)
    export = prov_commands.add_parser("export", help="export the log (PREMIS 3 XML)")
    export.add_argument("output", help="output URI holding _provenance/")
    export.add_argument("--format", choices=["premis"], default="premis")
    export.add_argument("--run", help="only this run id")
    export.add_argument("--to", help="write to this file (default: stdout)")
    export.add_argument("--config", "-c", help=OUTPUT_CONFIG_HELP)
    export.add_argument(
        "--include-master-paths", action="store_true", help="name local files by file:// URI (default: by item id)"
    )
    bag = commands.add_parser("bag", help="write a BagIt bag of a run's derivatives, provenance, PREMIS and report")
    bag.add_argument("output", nargs="?", help="output URI holding the derivatives and _provenance/")
    bag.add_argument("--run", help="the run to bag (default: the latest)")
    bag.add_argument("--to", help="a new local folder for the bag")
    bag.add_argument("--validate", metavar="BAG", help="instead: check an existing bag, naming every bad file")
    bag.add_argument("--config", "-c", help=OUTPUT_CONFIG_HELP)
    iiif = commands.add_parser("iiif", help="write a IIIF Presentation 3 manifest of the restored derivatives")
    iiif.add_argument("output", help="output URI holding the derivatives and _provenance/")
    iiif.add_argument("--base-url", required=True, help="public URL where OUTPUT is published (derivatives: BASE/key)")
    iiif.add_argument("--run", help="only the derivatives this run wrote (default: every item's latest)")
    iiif.add_argument("--image-service", help="IIIF Image API 3 service serving the derivatives by key (else static)")
    iiif.add_argument("--label", help="the manifest's label (default: the collections named in the manifest)")
    iiif.add_argument("--config", "-c", help=OUTPUT_CONFIG_HELP)
    iiif.add_argument(
        "--include-master-paths", action="store_true", help="name and link local masters by file:// URI (default: not)"
    )
    prune = commands.add_parser("prune", help="remove kept intermediates no current chain key needs")
    prune.add_argument("output", help="output URI holding _intermediates/ and _provenance/")
    prune.add_argument("--keep-runs", type=int, default=1, help="keep what each item's last N runs recorded (1)")
    prune.add_argument("--older-than", type=float, metavar="DAYS", help="only intermediates untouched this long")
    prune.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
    prune.add_argument("--config", "-c", help=OUTPUT_CONFIG_HELP)
    models_command.add_parser(commands)
    train_command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("ray", "ray.data", "filelock", "httpx", "httpcore", "botocore", "aiobotocore", "s3fs"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "run":
        return run_command(args)
    if args.command == "plan":
        return plan_command(args)
    if args.command == "serve":
        return serve_command(args)
    reads_output = {"provenance": export_command, "report": report_command, "iiif": iiif_command,
                    "bag": bag_command, "prune": prune_command}  # fmt: skip
    if args.command in reads_output:
        return _reaching_output(args, reads_output[args.command])
    if args.command == "models":
        return models_command.models_command(args)
    if args.command == "train":
        return train_command.train_command(args)
    return EXIT_USAGE


def _reaching_output(args: argparse.Namespace, command: Any) -> int:
    """Run a command that reads OUTPUT; a store that refuses it (no credentials, access denied) is one line."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return command(args)
    except (BotoCoreError, ClientError, PermissionError) as exc:
        where = args.output or args.validate
        print(
            f"patina: cannot reach {where}: {exc} (credentials come from the environment, or from --config "
            "pipeline.toml's [storage] options or secret_block)",
            file=sys.stderr,
        )
        return EXIT_USAGE


def report_command(args: argparse.Namespace) -> int:
    """``patina report``: the run's HTML report under OUTPUT/_reports/."""
    from patina.flows.report import write_report

    output = _uri(args.output)
    try:
        uri = write_report(output, args.run, _output_options(args))
    except ValueError as exc:
        print(f"patina: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(uri)
    return EXIT_OK


def serve_command(args: argparse.Namespace) -> int:
    """``patina serve``: a Prefect deployment of restore-collection with a cron schedule, served here."""
    apply_defaults()
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from prefect.schedules import Cron

    from patina.flows.config import ConfigError, load_config
    from patina.flows.restore import restore_collection

    try:
        config = load_config(args.config)
        ZoneInfo(args.timezone)
    except ConfigError as exc:
        print(f"patina: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ZoneInfoNotFoundError, ValueError):
        print(f"patina: unknown time zone {args.timezone!r}", file=sys.stderr)
        return EXIT_USAGE
    output = _uri(args.output)
    manifest = _uri(args.manifest)
    parameters = {"manifest": manifest, "output": output, "config": config.model_dump(mode="json")}
    if args.ray_address:
        parameters["ray_address"] = args.ray_address
    restore_collection.serve(
        name=args.name,
        schedule=Cron(args.cron, timezone=args.timezone),
        parameters=parameters,
        pause_on_shutdown=False,
    )
    return EXIT_OK


def export_command(args: argparse.Namespace) -> int:
    """``patina provenance export``: the log as PREMIS 3 XML."""
    import pyarrow.compute as pc

    from patina.flows.config import ConfigError
    from patina.manifests.premis import premis_document
    from patina.manifests.provenance import read_provenance
    from patina.manifests.storage import atomic_write

    output = _uri(args.output)
    try:
        table = read_provenance(output, _output_options(args))
    except ConfigError as exc:
        print(f"patina: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.run:
        table = table.filter(pc.equal(table["run_id"], args.run))
    if table.num_rows == 0:
        print(f"patina: no provenance under {output}" + (f" for run {args.run}" if args.run else ""), file=sys.stderr)
        return EXIT_USAGE
    document = premis_document(table, include_paths=args.include_master_paths)
    if args.to:
        atomic_write(os.path.abspath(args.to), document)
    else:
        sys.stdout.write(document.decode())
    return EXIT_OK


def prune_command(args: argparse.Namespace) -> int:
    """``patina prune``: kept intermediates that no current chain key needs go; never a derivative or provenance."""
    from patina.actors.intermediates import prune_intermediates
    from patina.flows.restore import new_run_id
    from patina.manifests.run_lock import RunLocked, run_lock

    if args.keep_runs < 1:
        print("patina: --keep-runs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    from patina.flows.config import ConfigError

    output = _uri(args.output)
    older = args.older_than * 86400 if args.older_than is not None else None
    try:
        options = _output_options(args)
        with run_lock(output, f"prune-{new_run_id()}", options):  # a live run's new intermediates are not logged
            removed, freed = prune_intermediates(output, args.keep_runs, older, args.dry_run, options)
    except (RunLocked, ConfigError) as exc:
        print(f"patina: {exc}", file=sys.stderr)
        return EXIT_USAGE
    verb = "would remove" if args.dry_run else "removed"
    for uri in removed if args.dry_run else []:
        print(uri)
    print(f"{verb} {len(removed)} kept intermediate(s), {freed / 2**20:.1f} MiB")
    return EXIT_OK


def image_size(uri: str, storage_options: dict | None = None) -> tuple[int, int]:
    """(width, height) of a stored image, from as much of its header as PIL reads."""
    from PIL import Image

    from patina.manifests.storage import filesystem

    fs, path = filesystem(uri, storage_options)
    with fs.open(path, "rb") as handle, Image.open(handle) as image:
        return image.size


def bag_command(args: argparse.Namespace) -> int:
    """``patina bag OUT [--run R] --to DEST``: a BagIt bag of the run; ``patina bag --validate BAG``: check one."""
    from pathlib import Path

    from patina.manifests.bagging import BagError, bag_run, validate_bag
    from patina.manifests.provenance import run_ids

    if args.validate:
        problems = validate_bag(Path(args.validate))
        for problem in problems:
            print(f"BAD      {problem}")
        print(f"{args.validate}: " + (f"{len(problems)} problem(s)" if problems else "valid"))
        return EXIT_ERROR if problems else EXIT_OK
    if not args.output or not args.to:
        print("patina: bag needs OUTPUT and --to DEST (or --validate BAG)", file=sys.stderr)
        return EXIT_USAGE
    from patina.flows.config import ConfigError

    output = _uri(args.output)
    try:
        options = _output_options(args)
        run = args.run or next(iter(reversed(run_ids(output, options))), None)
        if run is None:
            print(f"patina: no provenance under {output}", file=sys.stderr)
            return EXIT_USAGE
        bagged = bag_run(output, run, Path(args.to), options)
    except (BagError, ConfigError) as exc:
        print(f"patina: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{bagged.path}: bag of run {run}: {bagged.derivatives} derivatives, {bagged.payload_files} files, "
          f"{bagged.payload_bytes} bytes (sha256 and sha512 manifests)")  # fmt: skip
    return EXIT_OK


def iiif_command(args: argparse.Namespace) -> int:
    """``patina iiif``: OUTPUT/_iiif/manifest.json (OUTPUT/_iiif/<run>.json with --run)."""
    from patina.manifests.iiif_export import IIIF_DIR, latest_derivatives, manifest
    from patina.manifests.provenance import read_provenance
    from patina.manifests.storage import atomic_write, join_uri

    output = _uri(args.output)
    try:
        options = _output_options(args)
        rows = read_provenance(output, options).to_pylist()
        derivatives = latest_derivatives(rows, args.run)
        size = functools.partial(image_size, storage_options=options)
        document = manifest(
            derivatives, output, args.base_url, size, args.image_service, args.label, args.include_master_paths
        )
    except ValueError as exc:  # a ConfigError too
        print(f"patina: {exc}" + (f" for run {args.run}" if args.run else ""), file=sys.stderr)
        return EXIT_USAGE
    if args.run:  # its own file, and ids that say so
        document["id"] = document["id"].replace("/manifest.json", f"/{args.run}.json")
    name = f"{args.run}.json" if args.run else "manifest.json"
    uri = join_uri(output, IIIF_DIR, name)
    atomic_write(uri, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode(), options)
    print(uri)
    return EXIT_OK


def plan_command(args: argparse.Namespace) -> int:
    """Classify every item against the provenance log; touches nothing."""
    apply_defaults()
    from patina.actors.planning import plan_run
    from patina.flows.config import ConfigError, load_config, refuse_credentials
    from patina.flows.credentials import storage_options
    from patina.flows.restore import new_run_id
    from patina.manifests.items import ManifestError
    from patina.manifests.locations import OutputInsideMasters
    from patina.manifests.readers import iter_manifest

    output = _uri(args.output)
    try:
        refuse_credentials(args.manifest, args.output)
        config = load_config(args.config)
        options = storage_options(config)
        entries = iter_manifest(args.manifest, options, config.manifest.columns)
        settings = dataclasses.replace(config.run_settings(new_run_id(), output), storage_options=options)
        planned = plan_run(entries, settings, write=False, keep_items=args.json, verify=args.verify)
    except (ManifestError, ConfigError, OutputInsideMasters) as exc:
        return _fail(args, EXIT_USAGE, str(exc))
    counts = planned.counts
    if args.json:
        items = planned.items
        listed = {
            "changed_items": items.changed,
            "derivative_items": items.derivative,
            "removed_items": sorted(items.removed),
        }
        print(json.dumps({**counts, **listed}, indent=2))
        return EXIT_OK
    print(f"{planned.total} items in the manifest; {counts['to_run']} to run:")
    print(f"  new {counts['new']}, failed before {counts['failed']}, master changed {counts['source_changed']}")
    for stage, count in sorted(counts["changed"].items()):
        print(f"  changed from stage {stage}: {count}")
    print(f"  derivative missing/changed {counts['derivative_changed']}")
    print(f"  unchanged (nothing to do) {counts['unchanged']}; removed from the manifest (kept) {counts['removed']}")
    return EXIT_OK


def _fail(args: argparse.Namespace, code: int, message: str) -> int:
    """One line on stderr; with ``--json`` also ``{"status": "error", "exit_code", "error"}`` on stdout."""
    quiet_exit(args)
    print(f"patina: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"status": "error", "exit_code": code, "error": message}, indent=2))
    return code


class RunInterrupted(BaseException):
    """The run was asked to stop (SIGINT, SIGTERM). A BaseException, as KeyboardInterrupt is, so that no
    ``except Exception`` swallows it and every ``finally`` on its way commits or removes what it must."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stopping_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the run gracefully: the first raises :class:`RunInterrupted` in the main thread
    (the pipeline commits the items that finish in a short grace, the lock and planned rows are removed on
    the way out; a SIGTERM inside Prefect's flow engine reaches it after Prefect has recorded the crash);
    later ones only say that it is stopping."""

    def again(signum: int, frame: Any) -> None:
        print(f"patina: {signal.Signals(signum).name}: already stopping, committing what is done", file=sys.stderr)

    def first(signum: int, frame: Any) -> None:
        for caught in STOP_SIGNALS:
            signal.signal(caught, again)
        raise RunInterrupted(signum)

    saved = {caught: signal.signal(caught, first) for caught in STOP_SIGNALS}
    try:
        yield
    finally:
        for caught, handler in saved.items():
            signal.signal(caught, handler)


class ProgressSeen:
    """A progress reporter that remembers the last counts it passed on (what an interrupted run says it did)."""

    def __init__(self) -> None:
        self.reporter: Any = None
        self.done: int | None = None
        self.total: int | None = None

    def passing_to(self, reporter: Any) -> ProgressSeen:
        self.reporter = reporter
        return self

    def __call__(self, done: int, total: int, failed: int) -> None:
        self.done, self.total = done, total
        if self.reporter is not None:
            self.reporter(done, total, failed)

    def interrupted(self, signum: int) -> str:
        name = signal.Signals(signum).name
        if self.total is None:
            return f"interrupted ({name}) before any item was restored; rerun to start"
        left = self.total - (self.done or 0)
        return f"interrupted ({name}): {self.done} done, {left} left" + ("; rerun to finish" if left else "")


FIRST_LOOK_ITEMS = 1000


def first_look(manifest: str, output: str, config: Any) -> None:
    """The manifest's first :data:`FIRST_LOOK_ITEMS` items read and checked against the output before the run
    writes anything (its log is the first file) or starts Prefect's server: the usual mistakes (a missing
    manifest or column, an output that is a masters' folder) are reported at once, and nothing is written
    beside the masters. The flow still checks every item before it takes the output."""
    import itertools

    from patina.flows.credentials import storage_options
    from patina.manifests.locations import check_output_location
    from patina.manifests.readers import iter_manifest

    options = storage_options(config)
    entries = iter_manifest(manifest, options, config.manifest.columns)
    try:
        first = list(itertools.islice(entries, FIRST_LOOK_ITEMS))
    finally:
        entries.close()
    check_output_location(output, (item.source_uri for _, item in first), options)


def quiet_exit(args: argparse.Namespace) -> None:
    """Prefect's INFO lines as the process exits (its temporary server stopping) stay off a quiet terminal."""
    if not getattr(args, "verbose", False):
        logging.getLogger("prefect").setLevel(logging.WARNING)


def run_command(args: argparse.Namespace) -> int:
    apply_defaults()
    from patina.flows.config import ConfigError, load_config, refuse_credentials
    from patina.manifests.items import ManifestError
    from patina.manifests.locations import OutputInsideMasters

    output = _uri(args.output)
    try:  # every mistake found here is said before anything is written or started
        refuse_credentials(args.manifest, args.output)
        config = load_config(args.config)
        if args.num_cpus:
            config = config.model_copy(update={"ray": config.ray.model_copy(update={"num_cpus": args.num_cpus})})
        first_look(args.manifest, output, config)
    except (ManifestError, ConfigError, OutputInsideMasters) as exc:
        return _fail(args, EXIT_USAGE, str(exc))

    from patina.flows import progress
    from patina.flows.credentials import storage_options
    from patina.flows.prefect_api import prefect_api
    from patina.flows.restore import new_run_id, restore_collection
    from patina.flows.run_log import run_log
    from patina.manifests.run_lock import OutputNotWritable, RunLocked

    address = args.ray_address or os.environ.get("RAY_ADDRESS") or None
    run_id = new_run_id()
    seen = ProgressSeen()
    try:
        with (
            stopping_on_signals(),
            run_log(output, run_id, verbose=args.verbose, storage_options=storage_options(config)) as console,
            progress.terminal_reporter(console) as reporter,
            progress.reporting(seen.passing_to(reporter)),
            prefect_api(),
        ):
            summary = restore_collection(
                args.manifest, output, config, address, everything=args.all, run_id=run_id, verify=args.verify
            )
    except RunInterrupted as exc:
        return _fail(args, 128 + exc.signum, seen.interrupted(exc.signum))
    except (ManifestError, ConfigError, RunLocked) as exc:
        return _fail(args, EXIT_USAGE, str(exc))
    except OutputNotWritable as exc:
        return _fail(args, EXIT_ALL_FAILED, f"{exc.strerror}; {exc.consequence}")
    except Exception as exc:
        log.debug("run failed", exc_info=True)
        return _fail(args, EXIT_ERROR, f"run failed: {type(exc).__name__}: {redact(str(exc))}")
    quiet_exit(args)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return STATUS_EXIT[summary["status"]]


def print_summary(summary: dict[str, Any]) -> None:
    """The run's outcome for a person; every text from the data (ids, URIs, errors) is escaped for rich."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from patina.manifests.planner import describe_counts

    console = Console(soft_wrap=True)  # a line per fact, however narrow the terminal or pipe: ids stay whole
    colour = {"completed": "green", "partial": "yellow", "failed": "red"}[summary["status"]]
    output = escape(summary["output_uri"])
    if summary["total"] == 0 and summary.get("plan"):
        unchanged, removed = summary["plan"]["unchanged"], summary["plan"]["removed"]
        console.print(f"[bold green]nothing to do[/]: {unchanged} items unchanged, {removed} removed from the manifest")
        console.print(f"outputs:    {output}")
        return
    console.print(
        f"[bold {colour}]{summary['status']}[/]: {summary['succeeded']} of {summary['total']} items restored, "
        f"{summary['failed']} failed, in {summary['duration_s']:.1f} s (run {escape(summary['run_id'])})"
    )
    if summary.get("plan"):
        console.print(f"plan: {escape(describe_counts(summary['plan']))}")
    console.print(f"outputs:    {output}")
    console.print(f"provenance: {escape(summary['provenance_uri'])}/{escape(summary['run_id'])}/")
    if summary.get("report_uri"):
        console.print(f"report:     {escape(summary['report_uri'])}")
    if summary["failures"]:
        table = Table("item", "stage", "error", title="failures")
        for failure in summary["failures"]:
            error = f"{failure['error_type']}: {failure['error_message']}"
            table.add_row(escape(failure["item_id"]), escape(failure["stage"]), escape(error))
        console.print(table)


if __name__ == "__main__":
    sys.exit(main())
