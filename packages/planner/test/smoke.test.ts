describe('workspace', () => {
  it('runs ts-jest', () => {
    const x: number[] = [1, 2];
    expect(x.length).toBe(2);
  });
});
