"""Tools for the people who work on jcnn (not part of the package): summing up a
``make thorough`` run, hunting compiler aborts, minimal repros.  See
docs/contributing.md."""
