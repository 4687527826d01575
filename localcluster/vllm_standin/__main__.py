import sys

from localcluster.vllm_standin.cli import main

if __name__ == "__main__":
    sys.exit(main())
