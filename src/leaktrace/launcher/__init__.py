"""Starting a program under the shim (`leaktrace run`): checks, environment, supervision,
and finding the captures it wrote."""
