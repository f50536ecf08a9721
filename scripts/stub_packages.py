"""Create an empty stand-in for every package pyproject.toml lists (the Dockerfile's dependency layer).

pyproject maps `layerserve` to client/ and `layerserve.server` to service/; each listed package
gets its folder and an empty __init__.py, so that `pip install .` can resolve the dependencies
before the sources are copied in.
"""

import pathlib
import tomllib

setuptools = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["tool"]["setuptools"]
package_dirs = setuptools["package-dir"]
for package in setuptools["packages"]:
    root = max((name for name in package_dirs if package == name or package.startswith(name + ".")), key=len)
    folder = pathlib.Path(package_dirs[root], *package[len(root):].split(".")[1:])
    folder.mkdir(parents=True, exist_ok=True)
    # pyproject reads the version from layerserve.__version__: the stand-in defines one too.
    (folder / "__init__.py").write_text('__version__ = "0"\n' if package == "layerserve" else "")
