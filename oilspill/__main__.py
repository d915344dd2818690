from oilspill.cli import run

if __name__ == "__main__":  # not when a worker process (spawn) imports it as __mp_main__
    run()
