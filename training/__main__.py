"""python -m training {train,compare,evaluate,export,quantize,average,pack,unpack} ..."""

from __future__ import annotations

import logging
import sys

from fermonitor.core.errors import one_line


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ("train", "compare", "evaluate", "export", "quantize", "average", "pack", "unpack")
    if not argv or argv[0] not in commands:
        print(f"usage: python -m training {{{','.join(commands)}}} [options]; -h after a command for its options",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    command, rest = argv[0], argv[1:]
    try:
        run(command, rest)
    except (ValueError, OSError) as exc:
        # Bad input: the project's errors (DataFormatError, CheckpointError, ExportError, PackError,
        # RunsFailedError are ValueErrors) and missing files name it; one line, the traceback only in the debug log.
        logging.getLogger("training").debug("%s failed", command, exc_info=True)
        print(f"training {command}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"training {command}: interrupted; a train or compare run continues with --resume or when started "
              "again", file=sys.stderr)
        return 130
    return 0


def run(command: str, rest: list[str]) -> None:
    if command == "train":
        from training import train

        train.main(train.get_args_parser().parse_args(rest))
    elif command == "compare":
        from training import compare

        compare.main(compare.get_args_parser().parse_args(rest))
    elif command == "evaluate":
        from training import evaluate_cli

        evaluate_cli.main(evaluate_cli.get_args_parser().parse_args(rest))
    elif command == "quantize":
        from training import quantize

        quantize.main(quantize.get_args_parser().parse_args(rest))
    elif command == "average":
        from training import average

        average.main(average.get_args_parser().parse_args(rest))
    elif command in ("pack", "unpack"):
        from training import datapack

        if command == "pack":
            datapack.main_pack(datapack.get_pack_parser().parse_args(rest))
        else:
            datapack.main_unpack(datapack.get_unpack_parser().parse_args(rest))
    else:
        from training import export

        export.main(export.get_args_parser().parse_args(rest))


if __name__ == "__main__":
    raise SystemExit(main())
