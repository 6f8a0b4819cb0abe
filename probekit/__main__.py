"""``python -m probekit`` runs the command line."""

from probekit.cli import main

if __name__ == "__main__":
    main()
