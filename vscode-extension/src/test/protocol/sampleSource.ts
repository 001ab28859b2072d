/** The Python buffer both protocol suites open: a function whose body is completed; later tests append lines. */
export const SAMPLE_SOURCE = [
    'import math',
    '',
    '',
    'def circle_area(radius: float) -> float:',
    '    """Return the area of a circle."""',
    '    return math.pi * radius ** 2',
    '',
    '',
    'def add(a: int, b: int) -> int:',
    '    ',
    '',
].join('\n');
